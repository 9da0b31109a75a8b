#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
static long rss(void){ long a,b; FILE*f=fopen("/proc/self/statm","r"); fscanf(f,"%ld %ld",&a,&b); fclose(f); return b*4/1024; }
int main(int argc,char**argv){ int R=atoi(argv[1]); void* p[50];
  for(int r=0;r<R;r++){ for(int i=0;i<50;i++){ p[i]=calloc(1,4000000); memset(p[i],1,4000000);} long a=rss(); for(int i=0;i<50;i++) free(p[i]); 
    if(r%4==0||r==R-1){ printf("r%d live-rss %ld freed-rss %ld\n", r, a, rss()); if(getenv("ST")) malloc_stats(); } }
}
