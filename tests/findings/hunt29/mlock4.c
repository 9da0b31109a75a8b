// mlockall(MCL_CURRENT|MCL_FUTURE) then malloc of one large block: VmLck/VmRSS (arg: block size, arg2: 1 = do a small malloc between)
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
static void show(const char*w){ char b[4096]; FILE*f=fopen("/proc/self/status","r"); size_t n=fread(b,1,sizeof b-1,f); b[n]=0; fclose(f); char*l=strstr(b,"VmLck"); char*r=strstr(b,"VmRSS"); printf("%-22s %.20s | %.20s\n",w,l,r); }
int main(int argc,char**argv){
  size_t n=argc>1?strtoull(argv[1],0,0):(1u<<20); int between=argc>2?atoi(argv[2]):0;
  show("start");
  if(mlockall(MCL_CURRENT|MCL_FUTURE)){perror("mlockall");return 1;}
  show("after mlockall");
  if(between){ char*volatile s=malloc(100); s[0]=1; free(s);} 
  char*volatile p=malloc(n); p[0]=1; show("after malloc");
  free(p); show("after free");
  return 0;
}
