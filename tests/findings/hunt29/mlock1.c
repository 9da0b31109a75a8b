// mlockall(MCL_CURRENT|MCL_FUTURE), then one 1 MiB malloc: how much memory gets locked / resident?
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
static void show(const char*w){ FILE*f=fopen("/proc/self/status","r"); char l[256]; printf("%s:",w); while(fgets(l,256,f)) if(!strncmp(l,"VmRSS",5)||!strncmp(l,"VmLck",5)) { l[strlen(l)-1]=0; printf(" %s",l);} printf("\n"); fclose(f);}
int main(int argc,char**argv){
  size_t n=argc>1?strtoull(argv[1],0,0):(1u<<20);
  void*warm=malloc(100); show("start");
  if(mlockall(MCL_CURRENT|MCL_FUTURE)){perror("mlockall");return 1;}
  show("after mlockall");
  char*p=malloc(n); if(!p){perror("malloc");return 1;} p[0]=1; show("after malloc");
  free(p); show("after free");
  munlockall(); 
  char*q=malloc(n); q[0]=1; free(q); show("after munlockall+malloc/free");
  free(warm); return 0;
}
